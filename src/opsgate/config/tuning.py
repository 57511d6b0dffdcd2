"""The `tuning:` section of the config file: where fine-tuning jobs keep their files and how
they run (docs/tuning.md).

```yaml
tuning:
  folder: ./opsgate-tuning   # job folders: exported data, checkpoints, adapters
  threads: 2                 # torch CPU threads of a training worker
  bases: [/models]           # base model folders must lie under one of these (empty: any)
  hosted_poll: 30            # seconds between looks at a provider-hosted job
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TuningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="run queued jobs in this process")
    folder: str = Field(default="opsgate-tuning", min_length=1, description="job folders")
    threads: int = Field(default=2, ge=1, le=256, description="torch threads of a worker")
    bases: list[str] = Field(
        default_factory=list, description="allowed parent folders of base models (empty: any)"
    )
    poll: float = Field(
        default=2.0, gt=0, le=60, description="seconds between looks at the queue and heartbeats"
    )
    hosted_poll: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="seconds between looks at a provider-hosted job (method openai)",
    )
    stale_after: float = Field(
        default=60.0, gt=0, description="seconds without a heartbeat before a job is taken up"
    )
