"""Deterministic synthetic defect images in the MVTec-AD folder layout.

Why: the built-in `demo` protocol must run anywhere, on CPU, without MVTec-AD. The images are
small but are rendered, not painted: woven threads, wood grain, threaded screws, machined
nuts... so that frozen ImageNet features see real structure, and so that a feature
reconstruction model neither scores 100% everywhere nor keeps old objects for free.

Every sample is a pure function of (seed, category, folder, index): renderers draw from
`np.random.default_rng` streams derived from that key, never from global state, so adding
categories or images does not change the others and a spec always gives the same bytes.
A sample is rendered in three steps: the category's scene (object, background, coverage),
an optional defect that changes the scene and returns its mask, then the camera (lighting,
white balance, sensor noise). The same key without the defect gives the same normal image.

The modules follow what changes together: `geometry` (shapes, noise, paint), `scene` (what a
renderer returns), `textures` and `objects` (one renderer per category), `defects`, `camera`,
`sample` (the catalogue and `render_sample`), `spec` (`SynthSpec`, the manifest) and `writer`
(`generate`, `ensure`). Any change that alters a pixel bumps `spec.GENERATOR_VERSION`.

Layout written by `generate` (what `iufbench.data` readers of MVTec-AD expect)::

    <out>/synth.json                              manifest: generator version + spec
    <out>/<category>/train/good/000.png
    <out>/<category>/test/good/000.png
    <out>/<category>/test/<defect>/000.png
    <out>/<category>/ground_truth/<defect>/000_mask.png   (255 defect, 0 elsewhere)
"""
from iufbench.data.synth.defects import DEFECTS
from iufbench.data.synth.sample import CATALOGUE, CATEGORIES, render_sample
from iufbench.data.synth.scene import Scene
from iufbench.data.synth.spec import GENERATOR_VERSION, MANIFEST, SynthSpec, manifest, spec_hash
from iufbench.data.synth.writer import ensure, generate

__all__ = [
    "CATALOGUE", "CATEGORIES", "DEFECTS", "GENERATOR_VERSION", "MANIFEST", "Scene", "SynthSpec",
    "ensure", "generate", "manifest", "render_sample", "spec_hash",
]
