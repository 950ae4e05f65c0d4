"""Micro-benchmark: bytes the operator's cache keeps per object, by kind.

RSS says how much memory the process holds, not what holds it. This feeds LIST bodies through the
same path an informer uses (streamed decoding, the kind's transform, freezing into a Store) and
counts, with tracemalloc, what each kind's store keeps once the bodies are gone.

    python -m bench.cache_size --kubeconfig K --namespaces a,b   # LISTs from a cluster
    python -m bench.cache_size --save DIR ...                    # ... and keep the bodies
    python -m bench.cache_size --from DIR                        # bodies saved earlier

The bodies are exactly what the operator asks for: the watch-cache LIST with its label selector, as
PartialObjectMetadata for the kinds it reads only by metadata.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from controller.kube import Kube, load_api_client
from controller.list_decoder import ListDecoder
from controller.resources import METADATA_LIST
from controller.watchers import kinds
from controller.watchers.cache import KindSpec
from controller.watchers.store import Store

SPECS = (
    kinds.SESSION_SPEC,
    kinds.JOB_SPEC,
    kinds.POD_SPEC,
    kinds.SECRET_SPEC,
    kinds.SERVICE_SPEC,
    kinds.PVC_SPEC,
    kinds.SERVICE_ACCOUNT_SPEC,
    kinds.ROLE_SPEC,
    kinds.ROLE_BINDING_SPEC,
)
CHUNK = 1 << 16


def fetch(kube: Kube, spec: KindSpec, namespace: str) -> bytes:
    query = {"resourceVersion": "0", "labelSelector": spec.label_selector}
    accept = METADATA_LIST if spec.metadata_only else "application/json"
    url = kube._url(spec.resource.path(namespace), query)
    response = kube.pool.request("GET", url, headers=kube._headers(None, accept))
    if response.status != 200:
        raise SystemExit(f"LIST {spec.resource.plural} in {namespace}: HTTP {response.status}")
    return bytes(response.data)


def chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def fill(store: Store, spec: KindSpec, namespace: str, body: bytes) -> None:
    """As an informer's LIST does; nothing of the body or the decoder outlives the call."""
    items = ListDecoder(chunks(body))
    store.replace(namespace, (spec.transform(i) for i in items))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_size", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, help="fetch LISTs from this cluster")
    parser.add_argument("--namespaces", default="", help="comma-separated namespaces to list")
    parser.add_argument("--save", type=Path, help="also write the fetched bodies to this directory")
    parser.add_argument("--from", dest="source", type=Path, help="read bodies saved with --save")
    args = parser.parse_args(argv)
    kube = Kube(load_api_client(str(args.kubeconfig))) if args.kubeconfig else None
    if kube is None and args.source is None:
        parser.error("give --kubeconfig (with --namespaces) or --from")
    namespaces = [n for n in args.namespaces.split(",") if n]
    if args.source is not None and not namespaces:
        namespaces = sorted({p.stem.split("_", 1)[1] for p in args.source.glob("*_*.json")})

    def body(spec: KindSpec, namespace: str) -> bytes:
        name = f"{spec.resource.plural}_{namespace}.json"
        if args.source is not None:
            return bytes((args.source / name).read_bytes())
        assert kube is not None
        data = fetch(kube, spec, namespace)
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / name).write_bytes(data)
        return data

    print(f"{len(namespaces)} namespaces; bytes kept per cached object (tracemalloc)\n")
    print("| kind | objects | bytes per object |\n|---|---|---|")
    stores: list[Store] = []
    sessions = 0
    tracemalloc.start()
    for spec in SPECS:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        store = Store(spec.indexers)
        for namespace in namespaces:
            fill(store, spec, namespace, body(spec, namespace))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
        stores.append(store)
        sessions = sessions or len(store)
        print(f"| {spec.resource.plural} | {len(store)} | {kept / max(len(store), 1):.0f} |")
    total = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"\nall kinds: {total / max(sessions, 1):.0f} bytes per session ({total / 2**20:.1f} MiB)")
    print("(strings shared between kinds are counted with the first kind that stores them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
