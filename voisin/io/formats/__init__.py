"""One module per index family: a reader registered by tag, a writer by class.

Each module imports its index classes at import time; ``faiss_format`` imports
the modules lazily (on the first read or write), so ``import voisin`` stays light.
"""
