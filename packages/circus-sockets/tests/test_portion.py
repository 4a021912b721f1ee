"""circus.sockets installs as a portion of the circus namespace."""

import circus
import circus.sockets


def test_portion_is_inside_namespace() -> None:
    assert circus.__file__ is None
    assert circus.sockets.__file__ is not None
