"""Encoders, decoders, discriminators and classifiers shared by every family."""
from .parts import (Body, Classifier, Decoder, Discriminator, GaussianEncoder, NetSpec,
                    conv_stages)

__all__ = ["Body", "Classifier", "Decoder", "Discriminator", "GaussianEncoder", "NetSpec",
           "conv_stages"]
