"""Offline evaluation: benchmark scorers and labelled-traffic metrics.

Submodules are imported by name (``gatewarden.evaluation.nab``, ...) so each stays optional and
importing the package costs nothing.
"""
