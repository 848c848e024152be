"""Encode-process-decode models built from hooked processors."""

from hookgnn.models.base import ModelOutput
from hookgnn.models.gnn import HookedGNN, tie_parameters
from hookgnn.models.heads import Decoder, Encoder, prediction_to_input
from hookgnn.models.layered import LayeredGNN

__all__ = ["Decoder", "Encoder", "HookedGNN", "LayeredGNN", "ModelOutput", "prediction_to_input", "tie_parameters"]
