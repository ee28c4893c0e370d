"""One module per study, all of the same shape:

    cells(config) -> list[dict]          the grid: one dict of config columns per cell
    run(config, cells, data, device)     train every cell on the engine -> StudyOutput
    summarize(output) -> dict            headline numbers for `dvc metrics diff`

Each module names the datasets it reads in DATASETS.
"""

from pipeline.studies import kfold, optimizers, polynomial, regularization, spiral, width_depth

STUDIES = {"spiral": spiral, "polynomial": polynomial, "regularization": regularization,
           "optimizers": optimizers, "width_depth": width_depth, "kfold": kfold}
