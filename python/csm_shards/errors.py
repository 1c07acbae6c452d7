"""The one exception csm_shards raises for a broken shard or manifest: `ShardError`."""

from __future__ import annotations

__all__ = ["ShardError"]


class ShardError(ValueError):
    """A shard or manifest that cannot be read or breaks the schema.

    Its message is one line naming the file, the dataset or attribute when the problem is
    local to one, and what is wrong, as csm prints it: ``PATH: 'labels': is float64, expected float32``.

    Attributes:
        path: the file (or folder) at fault.
        dataset: the dataset or attribute at fault, or None when the problem is the whole file.
        problem: what is wrong, on one line.
    """

    def __init__(self, path: str, problem: str, dataset: str | None = None) -> None:
        self.path = path
        self.dataset = dataset
        self.problem = problem.replace("\n", " ")
        where = f"{path}: '{dataset}': " if dataset else f"{path}: "
        super().__init__(where + self.problem)
