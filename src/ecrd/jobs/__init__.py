"""Background jobs: the runner that schedules them across processes (`runner`), the jobs ecrd
has (`catalog`), fire-and-forget tasks kept and drained (`background`) and `ecrd jobs`
(`commands`).

Nothing is imported here, so `ecrd --help` loads no database code through `ecrd jobs`.
"""
