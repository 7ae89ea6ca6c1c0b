"""Collections with an embedder: bad documents and texts get a clear error, nothing is stored,
and the embedder is not run on input that is refused anyway."""

from __future__ import annotations

import numpy as np
import pytest

import voisin


class CountingEmbedder:
    """A toy encoder (text length, count of 'a', 1) that counts the texts it embedded."""

    name = "toy-counting"
    dim = 3

    def __init__(self) -> None:
        self.calls = 0
        self.bad: str | None = None  # "shape", "nan", "dim", "raise": misbehave on purpose

    def encode(self, texts):
        self.calls += 1
        if self.bad == "raise":
            raise RuntimeError("the encoder broke")
        out = np.array([[len(t) + 1.0, t.count("a"), 1.0] for t in texts], dtype=np.float32)
        if self.bad == "shape":
            return out[:-1]
        if self.bad == "nan":
            out[0, 0] = np.nan
        if self.bad == "dim":
            return out[:, :2]
        return out


@pytest.fixture
def setup(tmp_path):
    enc = CountingEmbedder()
    db = voisin.connect(tmp_path / "db")
    col = db.create_collection("docs", dim=3, metric="cosine", embedder=enc)
    col.upsert([1, 2], documents=["banana", "kiwi"], payloads=[{"f": "y"}, {"f": "g"}])
    enc.calls = 0
    yield col, enc
    db.close()


def _state(col):
    records = col.get([1, 2, 3, 4], with_vectors=True)
    return col.seq, col.count(), [(r.id, r.payload, r.document, r.vector.tolist()) for r in records]


@pytest.mark.parametrize("call, error, message", [
    (lambda c: c.upsert([3], documents="one text"), TypeError, "documents: expected a list of strings, got 'one text'"),
    (lambda c: c.upsert([3, 4], documents=["ok", None]), TypeError, "documents[1]: expected a string, got NoneType"),
    (lambda c: c.upsert([3, 4], documents=[7, "ok"]), TypeError, "documents[0]: expected a string, got int"),
    (lambda c: c.upsert([3], documents=[b"raw"]), TypeError, "documents[0]: expected a string, got bytes "
                                                             "(decode bytes to str first)"),
    (lambda c: c.upsert([3], documents=[["nested"]]), TypeError, "documents[0]: expected a string, got list"),
    (lambda c: c.upsert([3, 4], documents=["only one"]), ValueError,
     "documents: expected 2 documents (one per id), got 1"),
    (lambda c: c.upsert([3], documents=["one", "two"]), ValueError,
     "documents: expected 1 documents (one per id), got 2"),
    (lambda c: c.upsert([3], documents=["bad \ud800 half"]), ValueError,
     "documents[0]: expected text encodable as UTF-8, got a lone surrogate '\\ud800' at position 4"),
    (lambda c: c.upsert([3], documents=None), TypeError, "vectors: expected an array of shape (n, dim), or documents"),
    (lambda c: c.upsert([3], documents=["ok"], payloads=[{"x": float("nan")}]), ValueError,
     "payloads[0]['x']: expected a finite number"),
    (lambda c: c.upsert([3, 3], documents=["a", "b"]), ValueError, "ids: duplicate id 3 in one call"),
    (lambda c: c.upsert([3], np.ones((1, 3)), documents=["a", "b"]), ValueError, "documents: expected 1 documents"),
    (lambda c: c.search(texts=[None]), TypeError, "texts[0]: expected a string, got NoneType"),
    (lambda c: c.search(texts=None), TypeError, "query: expected a vector"),
    (lambda c: c.search(texts=3), TypeError, "texts: expected a list of strings, got 3"),
    (lambda c: c.upsert([3], documents=5), TypeError, "documents: expected a list of strings, got 5"),
    (lambda c: c.upsert([3], documents={"a": 1}), TypeError, "documents: expected a list of strings, got {'a': 1}"),
    (lambda c: c.upsert([3], documents=np.array([["a"]])), TypeError, "got an array of shape (1, 1)"),
    (lambda c: c.search(np.ones(3), texts=["a"]), TypeError, "query: expected either query vectors or texts"),
    (lambda c: c.search(texts=["a"], k=0), ValueError, "k: expected a positive integer"),
    (lambda c: c.search(texts=["a"], filter={"must": [{"key": "f", "range": {"gt": "x"}}]}), Exception,
     "filter.must[0].range.gt"),
])
def test_refused_before_embedding_and_nothing_stored(setup, call, error, message):
    col, enc = setup
    before = _state(col)
    with pytest.raises(error) as err:
        call(col)
    assert message in str(err.value), str(err.value)
    assert _state(col) == before
    assert enc.calls == 0, "the embedder ran on input that was refused"


@pytest.mark.parametrize("bad, error, message", [
    ("shape", ValueError, "embedder output: expected 2 vectors"),
    ("nan", ValueError, "embedder output: contains NaN or inf"),
    ("dim", ValueError, "embedder output: expected vectors of dimension d=3"),
    ("raise", RuntimeError, "the encoder broke"),
])
def test_a_misbehaving_embedder_stores_nothing(setup, bad, error, message):
    col, enc = setup
    before = _state(col)
    enc.bad = bad
    with pytest.raises(error, match=message):
        col.upsert([3, 4], documents=["apple", "pear"])
    assert _state(col) == before
    with pytest.raises(error, match=message):
        col.search(texts=["apple", "pear"])


def test_good_documents_after_refusals_are_stored_and_found(setup):
    col, enc = setup
    with pytest.raises(TypeError):
        col.upsert([3, 4], documents=["papaya", 5])
    col.upsert([3, 4], documents=["papaya", "fig"], payloads=[{"f": "o"}, {"f": "p"}])
    assert col.count() == 4 and enc.calls == 1
    assert [r.document for r in col.get([1, 2, 3, 4])] == ["banana", "kiwi", "papaya", "fig"]
    hit = col.search(texts=["fig"], k=1)[0]
    assert hit.ids == [4] and hit.documents == ["fig"] and hit.payloads == [{"f": "p"}]
    assert col.upsert([], documents=[]) == col.seq and enc.calls == 2  # an empty batch embeds nothing


def test_numpy_strings_are_stored_as_plain_text(setup):
    col, _ = setup
    col.upsert([5, 6], documents=np.array(["grape", "melon"]))
    docs = [r.document for r in col.get([5, 6])]
    assert docs == ["grape", "melon"] and all(type(d) is str for d in docs)


def test_embedder_of_the_wrong_dimension_is_refused(tmp_path):
    with voisin.connect(tmp_path / "db") as db:
        with pytest.raises(ValueError, match="embedder: 'toy-counting' makes vectors of dimension 3, "
                                             "the collection holds dim=8"):
            db.create_collection("c", dim=8, embedder=CountingEmbedder())
        assert not db.has_collection("c")
        with pytest.raises(TypeError, match="embedder: expected a callable texts -> vectors or an encoder"):
            db.create_collection("c", dim=3, embedder=42)
