"""Batched training engine: G small models of one shape trained as one.

Parameters are stacked along a leading model axis ([G, fan_in, fan_out]); every
per-model knob (seed, learning rate, weight decay, momentum, betas, dropout rate,
active inputs, training rows) is a tensor along that axis. Each model draws its
random numbers from its own generators, so a model's numbers do not depend on which
other models share its group.
"""

from pipeline.engine.models import ACTIVATIONS, Arch, forward, init_params, predict
from pipeline.engine.rng import ModelRng
from pipeline.engine.train import Job, Result, TrainData, TrainSpec, train

__all__ = ["ACTIVATIONS", "Arch", "Job", "ModelRng", "Result", "TrainData", "TrainSpec",
           "forward", "init_params", "predict", "train"]
