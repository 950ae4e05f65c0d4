"""`python -m controller run|session-trigger` / `agentic-operator run|session-trigger`."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
from collections.abc import Sequence

from controller import lean_client

# Before anything imports the official client: the operator never needs its generated models.
lean_client.install()

from controller import config as config_module  # noqa: E402
from controller import logs, tracing  # noqa: E402
from controller.kube import Kube  # noqa: E402
from controller.kubeconfig import KubeconfigError, load  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    args = config_module.build_parser().parse_args(argv)
    if args.command == "session-trigger":
        from controller import trigger

        return trigger.main()
    try:
        config = config_module.config_from(args)
    except ValueError as exc:
        print(f"agentic-operator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_format, config.log_level)
    # `kill -USR1` prints every thread's stack to stderr and carries on: the way to see where a
    # stuck operator waits without stopping it (Go's SIGQUIT dump, minus the exit).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    tracing.setup()
    from controller.operator import build

    try:
        kube = Kube(load(config.kubeconfig))
    except KubeconfigError as exc:
        print(f"agentic-operator: {exc}", file=sys.stderr)
        return 1
    manager, _ = build(config, kube)
    manager.install_signal_handlers()
    logging.getLogger("controller").info(
        "starting: namespaces=%s selector=%s leader-elect=%s",
        ",".join(config.namespaces) or "-",
        config.namespace_selector if not config.namespaces else "-",
        config.leader_elect,
    )
    return manager.run()


if __name__ == "__main__":
    sys.exit(main())
