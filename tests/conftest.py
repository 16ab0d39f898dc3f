"""Shared test setup: one torch thread (the suite runs on 2 shared cores)."""

import torch

torch.set_num_threads(1)
