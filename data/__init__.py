"""Committed artefacts of the project, installed with the package as ``b2b.assets``.

``pretrained/`` holds the pretrained generator with its provenance and evaluation reports,
``ablations/`` the recorded ablation runs. Find a file with :func:`b2b.data.asset`.
"""
