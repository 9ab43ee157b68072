#!/usr/bin/env python3
"""kubernetes-validate's command line, with each JSON schema file parsed once
per run instead of once per resource (the same checks, several times faster
on a few hundred resources). Run it with the Python of the venv that holds
kubernetes-validate:  python3 kube_validate.py --strict -k 1.30.0 FILE...
"""
import functools
import sys

import kubernetes_validate.utils as utils
from kubernetes_validate.__main__ import main

utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)

if __name__ == "__main__":
    sys.exit(main())
