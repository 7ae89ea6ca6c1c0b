"""Named index grids: ann-benchmarks' build and query settings for the strongest peers.

``--preset scann-glove`` runs every build group ann-benchmarks runs for ScaNN
on angular sets (glove-25/50/100/200); ``--preset scann-glove/scann2`` runs one
group. The grids are transcribed from ann-benchmarks' per-algorithm
``config.yml`` (``float: angular`` or ``any`` sections), with its query
arguments mapped onto the adapters' knobs:

- ScaNN ``[leaves, reorder]`` pairs -> ``leaves_to_search+reorder``; every
  searcher is built with ``tree(n_leaves, 1, training_sample_size=n,
  spherical=True, quantize_centroids=True).score_ah(dims_per_block,
  anisotropic_quantization_threshold).reorder(1)``.
- NGT ``[result_expansion, 1 + epsilon]`` (QG) and ``[1 + epsilon, edge_size]``
  (ONNG) -> NGT's own epsilon, which is the ann-benchmarks value minus 1.
- voyager ``M``/``efConstruction`` per group, query ``ef``.

>>> [s.label for s in preset_specs("voyager-glove/M-16")]
['voyager:M=16 ef_construction=500 [ann-benchmarks M-16]']
"""

from __future__ import annotations

from .spec import IndexSpec, parse_spec

# --- ScaNN (ann_benchmarks/algorithms/scann/config.yml, float/angular) ---------------
_SCANN_BUILD = "num_leaves_to_search=1 reorder_k=1 spherical=true quantize_centroids=true"
_SCANN_ANGULAR = {
    "scann1": (2000, 0.2, 2, [(1, 30), (2, 30), (4, 30), (8, 30), (30, 120), (35, 100), (40, 80), (45, 80),
                              (50, 80), (55, 95), (60, 110), (65, 110), (75, 110), (90, 110), (110, 120),
                              (130, 150), (150, 200), (170, 200), (200, 300), (220, 500), (250, 500),
                              (310, 300), (400, 300), (500, 500), (800, 1000)]),
    "scann2": (1500, 0.55, 1, [(1, 30), (2, 30), (4, 30), (8, 30), (8, 25), (10, 25), (12, 25), (13, 25),
                               (14, 27), (15, 30), (17, 30), (18, 40), (20, 40), (22, 40), (25, 50), (30, 50),
                               (35, 55), (50, 60), (60, 60), (80, 80), (100, 100)]),
    "scann3": (1000, 0.2, 1, [(1, 30), (2, 30), (4, 30), (8, 30), (9, 25), (11, 35), (12, 35), (13, 35),
                              (14, 40), (15, 40), (16, 40), (17, 45), (20, 45), (20, 55), (25, 55), (25, 70),
                              (30, 70), (40, 90), (50, 100), (60, 120), (70, 140)]),
    "scann4": (1400, 0.15, 3, [(1, 30), (4, 30), (9, 30), (16, 32), (25, 50), (36, 72), (49, 98), (70, 150),
                               (90, 200), (120, 210), (180, 270), (210, 330), (260, 400), (320, 500),
                               (400, 600), (500, 700), (800, 900)]),
}

# --- NGT-QG (qg_ngt/config.yml) and NGT-ONNG (onng_ngt/config.yml), float/any -------
_QG_QUERY = [(0.0, 0.9), (0.0, 0.95), (0.0, 0.98), (0.0, 1.0), (1.2, 0.9), (1.5, 0.9), (2.0, 0.9), (3.0, 0.9),
             (1.2, 0.95), (1.5, 0.95), (2.0, 0.95), (3.0, 0.95), (1.2, 0.98), (1.5, 0.98), (2.0, 0.98),
             (3.0, 0.98), (1.2, 1.0), (1.5, 1.0), (2.0, 1.0), (3.0, 1.0), (5, 1.0), (10, 1.0), (20, 1.0),
             (1.2, 1.02), (1.5, 1.02), (2.0, 1.02), (3.0, 1.02), (2, 1.04), (3, 1.04), (5, 1.04), (8, 1.04)]
#: group -> (sample, epsilon for creation)
_QG_GROUPS = {"s2000-e0.02": (2000, 0.02), "s20000-e0.1": (20000, 0.1), "s4000-e0.02": (4000, 0.02),
              "s4000-e0.04": (4000, 0.04), "s4000-e0.06": (4000, 0.06), "s4000-e0.08": (4000, 0.08)}
_ONNG_QUERY = [0.6, 0.9, 1.0, 1.02, 1.03, 1.04, 1.05, 1.07, 1.1, 1.2]
_ONNG_REFINED_QUERY = [0.995, 0.998, 1.0, 1.005, 1.01, 1.015, 1.02]
#: group -> (epsilon for creation, refined without the tree)
_ONNG_GROUPS = {"e0.02": (0.02, False), "e0.03": (0.03, False), "e0.04": (0.04, False), "e0.06": (0.06, False),
                "e0.08": (0.08, False), "e0.1": (0.1, False), "e0.08-with-refinement": (0.08, True),
                "e0.1-with-refinement": (0.1, True)}

# --- voyager (voyager/config.yml, float/any) ----------------------------------------
_VOYAGER_M = (4, 8, 12, 16, 24, 36, 48, 64, 96)
_VOYAGER_EF = (10, 20, 40, 80, 120, 200, 400, 600, 800)


def _eps(ann_benchmarks_value: float) -> float:
    """ann-benchmarks passes NGT's epsilon as 1 + epsilon."""
    return round(ann_benchmarks_value - 1.0, 6)


def _pairs(pairs) -> str:
    return ",".join(f"{a}:{b}" for a, b in pairs)


def _grids() -> dict[str, dict[str, str]]:
    scann = {g: (f"scann:num_leaves={nl} anisotropic_quantization_threshold={avq} dims_per_block={dpb} "
                 f"{_SCANN_BUILD} leaves_to_search+reorder={_pairs(q)}")
             for g, (nl, avq, dpb, q) in _SCANN_ANGULAR.items()}
    qg = {g: (f"ngt:QG edge_size_for_creation=100 edge_size_for_search=40 epsilon_for_creation={e} "
              f"outdegree=64 indegree=120 max_edge=96 sample={s} "
              f"result_expansion+epsilon={_pairs((r, _eps(v)) for r, v in _QG_QUERY)}")
          for g, (s, e) in _QG_GROUPS.items()}
    onng = {}
    for g, (e, refined) in _ONNG_GROUPS.items():
        build = f"ngt:ONNG edge_size_for_creation=100 epsilon_for_creation={e} outdegree=10 indegree=120"
        if refined:
            query = _pairs((_eps(v), 40) for v in _ONNG_REFINED_QUERY)
            onng[g] = f"{build} refine=true tree=false epsilon+edge_size={query}"
        else:
            onng[g] = f"{build} epsilon+edge_size={_pairs((_eps(v), -2) for v in _ONNG_QUERY)}"
    voyager = {f"M-{m}": f"voyager:M={m} ef_construction=500 ef={','.join(map(str, _VOYAGER_EF))}"
               for m in _VOYAGER_M}
    return {"scann-glove": scann, "ngt-qg-glove": qg, "ngt-onng-glove": onng, "voyager-glove": voyager}


PRESETS: dict[str, dict[str, str]] = _grids()


def _named(text: str, group: str) -> IndexSpec:
    spec = parse_spec(text)
    build = " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in spec.build_params.items())
    head = f"{spec.library}:{spec.description + ' ' if spec.description else ''}"
    return IndexSpec(spec.text, spec.library, spec.description, dict(spec.build_params), dict(spec.sweep),
                     name=f"{head}{build} [ann-benchmarks {group}]")


def preset_specs(name: str) -> list[IndexSpec]:
    """The specs of preset ``name`` (``scann-glove``) or of one of its groups (``scann-glove/scann2``)."""
    if not isinstance(name, str):
        raise TypeError(f"preset: expected a name such as 'scann-glove', got {name!r}")
    preset, _, group = name.strip().partition("/")
    if preset not in PRESETS:
        raise ValueError(f"preset {name!r}: unknown; known presets: {', '.join(sorted(PRESETS))} "
                         "(NAME/GROUP runs one build group)")
    groups = PRESETS[preset]
    if group:
        if group not in groups:
            raise ValueError(f"preset {name!r}: no group {group!r}; {preset}'s groups: {', '.join(groups)}")
        return [_named(groups[group], group)]
    return [_named(text, g) for g, text in groups.items()]
