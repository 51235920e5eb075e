"""Web pages served by layerlab: the live explorer."""
