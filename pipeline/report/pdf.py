"""The report's PDF, laid out by WeasyPrint in a process of its own: started first, it
loads WeasyPrint while the report stage loads the results, and lays the PDF out while the
stage writes the HTML page, on a second core."""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
from pathlib import Path


class PdfWriter:
    """A forked process that writes one PDF (atomically) from the HTML it is sent."""

    def __init__(self, path: Path):
        ctx = mp.get_context("fork")
        self.path = Path(path)
        self._conn, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_write, args=(theirs, self._conn, self.path,
                                                      os.getpid()), daemon=True)
        self._proc.start()
        theirs.close()

    def send(self, html: str) -> None:
        """The PDF's HTML: the process lays it out while this one goes on."""
        try:
            self._conn.send(html)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the process failed before reading it: wait() says why

    def wait(self) -> None:
        """Until the PDF is written; its failure raised here."""
        try:
            error = self._conn.recv()
        except EOFError:
            error = None
        self._proc.join()
        if error is None and self._proc.exitcode != 0:
            error = f"its process ended with exit code {self._proc.exitcode}"
        if error:
            raise RuntimeError(f"{self.path}: {error}")

    def close(self) -> None:
        """Stop the process if it has not finished (the report failed first), leaving no
        part-written PDF."""
        self._conn.close()
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join()
        # atomic_path's temporary files
        for tmp in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.pdf"):
            tmp.unlink(missing_ok=True)


def _write(conn, ours, path: Path, parent: int) -> None:
    ours.close()  # the stage's end: closed there, the pipe then ends here too
    try:
        from weasyprint import HTML

        from pipeline.io import atomic_path

        try:
            html = conn.recv()
        except EOFError:
            return  # the report stopped before its PDF
        with atomic_path(path, ".pdf") as tmp:
            HTML(string=html).write_pdf(tmp)
            if os.getppid() != parent:  # the stage died meanwhile: no PDF of its own
                raise SystemExit(1)
        conn.send(None)
    except Exception as exc:  # the stage raises it from wait()
        conn.send(f"{type(exc).__name__}: {exc}")
