"""Network parts shared by every family: trunks with named heads, encoders, decoders,
discriminators, classifiers, recurrent parts with attention and latent priors."""
from .parts import (Body, Classifier, Decoder, DeterministicEncoder, Discriminator, GaussianEncoder,
                    NetSpec, Trunk, Upsample, apply_spectral_norm, conv_stages)
from .attention import GaussianAttention
from .recurrent import DRAWDecoder, DRAWEncoder
from .priors import (Categorical, CategoricalStyle, FittedGaussian, GaussianMixture, Prior, StandardNormal, SwissRoll,
                     make_prior)

__all__ = ["Body", "Categorical", "CategoricalStyle", "Classifier", "DRAWDecoder", "DRAWEncoder", "Decoder",
           "DeterministicEncoder", "Discriminator", "FittedGaussian", "GaussianAttention", "GaussianEncoder",
           "GaussianMixture", "NetSpec", "Prior", "StandardNormal", "SwissRoll", "Trunk", "Upsample",
           "apply_spectral_norm", "conv_stages", "make_prior"]
