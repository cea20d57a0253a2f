"""What blocks that touch the outside world may do in this process (issue 4).

``flowforge run`` (and ``Engine.run``) runs on the user's own machine: private networks are
theirs, commands are theirs. A shared worker (``flowforge worker``, the server) is a server: it
refuses loopback, private, link-local and metadata addresses and ``command`` blocks unless its
configuration allows them. Environment variables override either default:

- ``FLOWFORGE_ALLOW_PRIVATE_NETWORKS`` (``1``/``0``): let ``http`` reach any address;
- ``FLOWFORGE_ALLOWED_NETWORKS``: comma-separated CIDRs or host names reachable even when
  private networks are refused (``10.1.2.0/24,api.internal``);
- ``FLOWFORGE_COMMAND_BLOCKS`` (``1``/``0``): allow ``command`` blocks;
- ``FLOWFORGE_CODE_ALLOWED_MODULES``: comma-separated modules ``code`` blocks may import, added
  to the default allow-list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from flowforge.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class BlockPolicy:
    allow_private_network: bool
    allowed_networks: tuple[str, ...] = ()
    command_enabled: bool = False
    code_extra_modules: frozenset[str] = frozenset()
    server: bool = False
    """A shared worker or the server (not the user's own ``flowforge run``)."""

    @classmethod
    def local(cls, env: Mapping[str, str] | None = None) -> BlockPolicy:
        """The user's own machine (``flowforge run``): private networks and commands allowed."""
        return cls(allow_private_network=True, command_enabled=True).with_env(env)

    @classmethod
    def for_server(cls, env: Mapping[str, str] | None = None) -> BlockPolicy:
        """A shared worker or the server: private networks and commands refused."""
        return cls(allow_private_network=False, command_enabled=False, server=True).with_env(env)

    def with_env(self, env: Mapping[str, str] | None = None) -> BlockPolicy:
        env = os.environ if env is None else env
        policy = self
        flag = _flag(env, "FLOWFORGE_ALLOW_PRIVATE_NETWORKS")
        if flag is not None:
            policy = replace(policy, allow_private_network=flag)
        flag = _flag(env, "FLOWFORGE_COMMAND_BLOCKS")
        if flag is not None:
            policy = replace(policy, command_enabled=flag)
        networks = _names(env.get("FLOWFORGE_ALLOWED_NETWORKS"))
        if networks:
            policy = replace(policy, allowed_networks=tuple(networks))
        modules = _names(env.get("FLOWFORGE_CODE_ALLOWED_MODULES"))
        if modules:
            policy = replace(policy, code_extra_modules=frozenset(modules))
        return policy


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={value!r}: use 1 or 0")


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]
