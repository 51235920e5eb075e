"""Domain types and codecs shared by every layer; imports nothing else of layerlab."""
