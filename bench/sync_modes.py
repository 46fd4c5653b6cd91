import asyncio, time, tempfile, statistics
from pathlib import Path
from cachefleet.providers.local import LocalProvider
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render
from cachefleet.engine.admin import AdminClient
import redis.asyncio as r
async def trial(p, b, base, n, extra):
    keys=[]
    t0=time.perf_counter()
    await p.start(f"{base}-p", binary=b.server, config=render(NodeConfig(f"127.85.{base}.1", 6379, p.node_dir(f"{base}-p"), 10**8, extra=extra)), address=f"127.85.{base}.1", port=6379)
    keys.append(f"{base}-p")
    async def rep(i):
        k=f"{base}-r{i}"; keys.append(k); a=f"127.85.{base}.{i+2}"
        await p.start(k, binary=b.server, config=render(NodeConfig(a, 6379, p.node_dir(k), 10**8, replica_of=(f"127.85.{base}.1",6379), extra=extra)), address=a, port=6379)
        ad = AdminClient(a, 6379)
        while (await ad.info("replication")).get("master_link_status") != "up": await asyncio.sleep(0.001)
        await ad.close()
    await asyncio.gather(*(rep(i) for i in range(n)))
    t1=time.perf_counter()
    c = r.Redis(host=f"127.85.{base}.1")
    t=time.perf_counter(); await c.set("x","y"); await c.wait(n, 5000); dt=time.perf_counter()-t
    await c.aclose()
    for k in keys:
        await p.stop(k); p.remove(k)
    return dt, t1-t0
async def main():
    cat = Catalog.discover(); p = LocalProvider(Path(tempfile.mkdtemp())); p.adopt_all()
    variants = {"disk": {"repl-diskless-sync":"no"}, "hz100": {"hz":"100"}, "dual": {"dual-channel-replication-enabled":"yes"}, "disk+hz100": {"repl-diskless-sync":"no","hz":"100"}}
    for b in cat.binaries():
        for name, extra in variants.items():
            if name=="dual" and b.release.engine=="redis": continue
            res=[await trial(p,b,i,2,extra) for i in range(10)]
            ds=[x[0] for x in res]; ss=[x[1] for x in res]
            print(b.release.version, name, "slow:", sum(d>0.1 for d in ds), "of", len(ds), f"first-write median {statistics.median(ds)*1000:.1f}ms, start+sync median {statistics.median(ss)*1000:.1f}ms")
asyncio.run(main())
