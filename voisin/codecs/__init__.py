"""Codecs: how vectors are stored (product quantizer, scalar quantizer) and compared."""
