"""The sandbox of ``code`` blocks: user Python in a separate process that cannot harm the engine.

Layers, outermost first — the first two are the security boundary, the last two defence in
depth:

1. ``isolation``: the child process and what the machine offers around it (bubblewrap or
   ``unshare`` namespaces: no network, a private filesystem view, its own pid namespace; a
   per-attempt user id when the engine is root), an empty environment, a scratch directory;
2. ``limits``: CPU time, memory, processes, file size, open files (set in the child before it
   reads the code), output size and wall time (enforced by the engine, which kills it);
3. ``static_check``: an AST walk that refuses imports and names outside an allow-list;
4. ``runner``: restricted builtins and read-only views of the allowed modules in the child.

``process.run_in_sandbox`` runs one snippet; ``flowforge.blocks.code`` is the block type.
"""

from __future__ import annotations
