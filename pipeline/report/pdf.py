"""The report's PDF, laid out by WeasyPrint in processes of their own: started first, they
load WeasyPrint while the report stage loads the results; then one lays out the body and
one the appendix, side by side on the two cores, while the stage writes the HTML page.
The stage joins the two parts into one PDF: the appendix's pages after the body's, its
headings in the one outline, the body's links into it pointing at it, and its pages
numbered A-1, A-2, ... (as their footers read)."""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
import re
from pathlib import Path

APPENDIX = "<!-- appendix -->"  # where the report's PDF HTML splits into its two parts
PREFIX = "A-"  # the appendix's page labels


class PdfWriter:
    """Two forked processes that lay out the two parts of one PDF from the HTML they are
    sent; wait() joins them into the PDF (written atomically)."""

    def __init__(self, path: Path):
        ctx = mp.get_context("fork")
        self.path = Path(path)
        self._parts = [self.path.parent / f".{self.path.name}.{name}.pdf"
                       for name in ("body", "appendix")]
        pipes = [ctx.Pipe() for _ in self._parts]
        self._conns = [ours for ours, _ in pipes]
        self._procs = []
        for part, (_, theirs) in zip(self._parts, pipes):
            others = [end for pipe in pipes for end in pipe if end is not theirs]
            proc = ctx.Process(target=_write, args=(theirs, others, part, os.getpid()),
                               daemon=True)
            proc.start()
            self._procs.append(proc)
        for _, theirs in pipes:
            theirs.close()
        self._sent = False

    def send(self, html: str) -> None:
        """The PDF's HTML (split at APPENDIX): the processes lay its parts out while this
        one goes on."""
        self._sent = True
        for conn, part in zip(self._conns, split(html)):
            try:
                conn.send(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the process failed before reading it: wait() says why

    def wait(self) -> None:
        """Until the PDF is written; a failure of either part raised here."""
        if not self._sent:  # the processes would wait for their HTML forever
            raise RuntimeError(f"{self.path}: wait() before send()")
        errors = []
        for conn, proc in zip(self._conns, self._procs):
            try:
                error = conn.recv()
            except EOFError:
                error = None
            proc.join()
            if error is None and proc.exitcode != 0:
                error = f"its process ended with exit code {proc.exitcode}"
            if error:
                errors.append(error)
        if errors:
            for part in self._parts:
                part.unlink(missing_ok=True)
            raise RuntimeError(f"{self.path}: {errors[0]}")
        from pipeline.io import atomic_path

        with atomic_path(self.path, ".pdf") as tmp:
            join(*self._parts, tmp)
        for part in self._parts:
            part.unlink()

    def close(self) -> None:
        """Stop the processes that have not finished (the report failed first), leaving
        no part and no part-written PDF."""
        for conn in self._conns:
            conn.close()
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        # the parts, and atomic_path's temporary files
        for tmp in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.pdf"):
            tmp.unlink(missing_ok=True)


def _write(conn, others, path: Path, parent: int) -> None:
    for end in others:  # the stage's ends (closed there, the pipe then ends here too)
        end.close()  # and the other process's
    try:
        from weasyprint import HTML

        try:
            html = conn.recv()
        except EOFError:
            return  # the report stopped before its PDF
        HTML(string=html).write_pdf(path)
        if os.getppid() != parent:  # the stage died meanwhile: no part of its own
            path.unlink(missing_ok=True)
            raise SystemExit(1)
        conn.send(None)
    except Exception as exc:  # the stage raises it from wait()
        path.unlink(missing_ok=True)
        conn.send(f"{type(exc).__name__}: {exc}")


def split(html: str) -> tuple[str, str]:
    """The body and the appendix of the report's PDF HTML, each a whole document with
    the same head. The body ends with an empty anchor for every id of the appendix, so
    that WeasyPrint keeps the body's links into it (join points them at the appendix)."""
    at = html.index(APPENDIX)
    head, appendix = html[:html.index("<body")], html[at:]
    ids = re.findall(r'(?<![\w-])id="([^"]+)"', appendix)
    anchors = "".join(f'<a id="{i}"></a>' for i in ids)
    # out of the flow: in it, even an empty line box can push a page of its own
    return (f'{html[:at]}<div style="position: absolute">{anchors}</div>\n'
            "</body>\n</html>\n", f'{head}<body class="appendix-part">\n{appendix}')


def join(body: Path, appendix: Path, target: Path) -> None:
    """One PDF: the body's pages, then the appendix's. Named destinations come from both,
    the appendix's replacing the body's empty anchors of the same name (so the body's
    links lead into the appendix); the appendix's outline goes under the body's title,
    and its pages are labelled A-1, A-2, ..."""
    from pypdf import PdfReader
    from pypdf import PdfWriter as Pdf
    from pypdf.generic import ArrayObject, FloatObject, NameObject, NumberObject, TextStringObject

    first, second = PdfReader(body), PdfReader(appendix)
    out = Pdf()
    out.append(first, import_outline=False)
    offset = len(out.pages)
    out.append(second, import_outline=False)
    out.add_metadata(first.metadata)
    if "/Lang" in first.root_object:
        out.root_object[NameObject("/Lang")] = first.root_object["/Lang"]

    def xyz(reader, dest) -> ArrayObject:
        page = (offset if reader is second else 0) + reader.get_destination_page_number(dest)
        return ArrayObject([out.pages[page].indirect_reference, NameObject("/XYZ"),
                            FloatObject(dest.left or 0), FloatObject(dest.top or 0),
                            NumberObject(0)])

    dests = {str(k): xyz(first, d) for k, d in first.named_destinations.items()}
    dests |= {str(k): xyz(second, d) for k, d in second.named_destinations.items()}
    names = out.get_named_dest_root()
    names.clear()
    for name in sorted(dests):  # a name tree's keys are sorted
        names += [TextStringObject(name), dests[name]]

    def add(reader, items, parent):
        last = None
        for item in items:
            if isinstance(item, list):
                add(reader, item, last)
            else:
                last = out.add_outline_item_dict(
                    {NameObject("/Title"): TextStringObject(item.title),
                     NameObject("/Dest"): xyz(reader, item)}, parent)
        return last

    # the body's outline is its title with every heading under it: the appendix's join it
    add(second, second.outline, add(first, first.outline, None))
    out.set_page_label(offset, len(out.pages) - 1, style="/D", prefix=PREFIX, start=1)
    out.write(target)
