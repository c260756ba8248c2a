"""ssavae: semi-supervised adversarial variational autoencoders and the families they compare with."""
__version__ = "0.5.0"  # the one version string: pyproject, the CLI, checkpoints (CHANGELOG.md)


def __getattr__(name: str):
    """``ssavae.SSAVAEClassifier`` / ``SSAVAETransformer`` without importing scikit-learn (an
    optional extra) up front; ``ssavae.from_pretrained``, ``load_model``, ``export_run`` without
    importing torch until used."""
    if name in ("SSAVAEClassifier", "SSAVAETransformer"):
        from . import estimator

        return getattr(estimator, name)
    if name in ("from_pretrained", "load_model", "export_run"):
        from . import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'ssavae' has no attribute {name!r}")
