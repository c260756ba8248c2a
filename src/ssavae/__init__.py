"""ssavae: semi-supervised adversarial variational autoencoders and the families they compare with."""
__version__ = "0.2.0"
