"""``import faiss`` gives voisin (the voisin-faiss-shim distribution).

Install it only where the real faiss-cpu is not installed: both provide a
package named ``faiss``. ``faiss.contrib...`` and every other ``faiss.X``
resolve to ``voisin.X`` (see voisin.faiss_alias).
"""

import voisin

# replace=True: this very module is the "faiss" being imported; the import
# system hands out whatever sys.modules["faiss"] holds when it returns, voisin
voisin.install_as_faiss(replace=True)
