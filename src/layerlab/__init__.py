"""layerlab: Layer 1 and Layer 2 blockchains running for real, side by side, measured alike."""

__version__ = "0.1.0"
