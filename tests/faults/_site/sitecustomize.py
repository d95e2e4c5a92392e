"""Loaded by every Python process started with this folder on PYTHONPATH (fault tests only)."""

import os

if os.environ.get("BATCHFX_FAULTS_FAST_RETRY") == "1":
    import faults_sdk_retry

    faults_sdk_retry.install_lazily()
