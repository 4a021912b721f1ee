"""circus.watcher installs as a portion of the circus namespace."""

import circus
import circus.watcher


def test_portion_is_inside_namespace() -> None:
    assert circus.__file__ is None
    assert circus.watcher.__file__ is not None
