"""The kernel's optional dependencies, imported here and only when first used.

numpy: the workers' half of the collection store (:class:`clipq.store.collections.Collections`)
reads and writes embedding rows with it, and the CLI reads CIFAR-10's pickled arrays and
the ``.npy`` files of a bulk import. The
API's image does not have numpy, and never calls either.
"""

from __future__ import annotations

from types import ModuleType


def numpy() -> ModuleType:
    import numpy

    return numpy
