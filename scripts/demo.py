"""cryoTIGER demo: a headless Scipion project from templates/cryotiger_interpolate_demo.json.template.

1. Simulate an aligned tilt series from a REAL volume (default: the cylindra
   microtubule tomogram ../shared/data/cylindra_mt/14pf_MT.tif, 10.52 A/px),
   -60..60 degrees every 3 degrees, dose-symmetric order, 3 e/A^2 per tilt
   (Poisson noise).
2. Create a Scipion project, load the template with the files filled in
   (tomo's ProtImportTs -> ProtCryoTigerInterpolate), run both protocols.
3. Print a summary: tilts in and out, synthetic tilts, where the results are.

Run it with `bash scripts/demo.sh` (sets up the environments first); options:
`bash scripts/demo.sh --per-gap 3 --mode restore --volume PATH`.
"""
import argparse
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_VOLUME = os.path.join(ROOT, "..", "shared", "data", "cylindra_mt", "14pf_MT.tif")
TEMPLATE = "cryotiger_interpolate_demo"
PROJECT = "cryotiger-demo"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--volume", default=DEFAULT_VOLUME,
                   help="volume (z, y, x) to project: MRC, EM or TIFF (default: %(default)s)")
    p.add_argument("--pixel-size", type=float, default=10.52,
                   help="Angstrom per pixel when the file has none (cylindra: 1.052 nm)")
    p.add_argument("--output", default=os.path.join(ROOT, "demo-output"), help="output folder")
    p.add_argument("--step", type=float, default=3.0, help="tilt step in degrees")
    p.add_argument("--max-angle", type=float, default=60.0)
    p.add_argument("--dose", type=float, default=3.0, help="e/A^2 per tilt")
    p.add_argument("--per-gap", type=int, default=1, help="new tilts per gap")
    p.add_argument("--mode", choices=["add", "restore"], default="add")
    return p.parse_args(argv)


def simulate(args, folder):
    """Write folder/TS_MT.mrcs and TS_MT.tlt (angle, accumulated dose, order)."""
    import numpy as np
    from cryotiger_scipion.engine.commands.simulate import dose_symmetric_order
    from cryotiger_scipion.engine.io import write_stack
    from cryotiger_scipion.engine.simulate import Acquisition, load_volume, simulate_tilt_series

    vol, px = load_volume(args.volume)
    px = px or args.pixel_size
    vol = vol - np.median(vol)            # density above the background projects positive
    angles = np.arange(-args.max_angle, args.max_angle + 1e-6, args.step)
    order = dose_symmetric_order(angles)
    acq = Acquisition(pixel_size=px, dose_per_tilt=args.dose, order=order, seed=0)
    data = simulate_tilt_series(vol, angles, acq)
    os.makedirs(folder, exist_ok=True)
    write_stack(os.path.join(folder, "TS_MT.mrcs"), data, px)
    with open(os.path.join(folder, "TS_MT.tlt"), "w") as f:
        for a, o in zip(angles, order):
            f.write("%.2f %.4f %d\n" % (a, o * args.dose, o))
    return data.shape, px


def restore_scores(tis, data_dir):
    """Mean and range of the Pearson correlation between each synthetic tilt and
    the real (noisy) tilt acquired at its angle."""
    import mrcfile
    import numpy as np
    from cryotiger_scipion.constants import ATTR_SYNTHETIC
    from cryotiger_scipion.engine.io import read_angles
    real_angles = list(read_angles(os.path.join(data_dir, "TS_MT.tlt")))
    with mrcfile.open(os.path.join(data_dir, "TS_MT.mrcs"), permissive=True) as m:
        real = np.array(m.data)
    with mrcfile.open(tis[0].getFileName(), permissive=True) as m:
        out = np.array(m.data)
    rs = []
    for ti in tis:
        if getattr(ti, ATTR_SYNTHETIC).get():
            j = int(np.argmin(np.abs(np.array(real_angles) - ti.getTiltAngle())))
            rs.append(np.corrcoef(out[ti.getIndex() - 1].ravel(), real[j].ravel())[0, 1])
    return "mean %.3f (min %.3f, max %.3f) over %d tilts" % (np.mean(rs), min(rs), max(rs), len(rs))


def main(argv=None):
    args = parse_args(argv)
    if not os.path.exists(args.volume):
        print("demo: volume %s not found. The demo projects a real tomogram from the shared data "
              "folder (../shared/data, see its README.md); give another volume with "
              "--volume PATH (MRC, EM or TIFF)." % os.path.normpath(args.volume), file=sys.stderr)
        return 2
    t0 = time.time()
    out = os.path.abspath(args.output)
    data_dir = os.path.join(out, "data")
    shape, px = simulate(args, data_dir)
    print("demo: simulated %d tilts of %dx%d px (%.2f A/px) from %s"
          % (shape[0], shape[2], shape[1], px, os.path.normpath(args.volume)))

    from pyworkflow.project import Manager
    from cryotiger_scipion.constants import ATTR_SYNTHETIC, OUT_TILTSERIES
    from cryotiger_scipion.workflows import loadTemplate

    manager = Manager()
    proj_path = manager.getProjectPath(PROJECT)
    if os.path.exists(proj_path):
        if not os.path.realpath(proj_path).startswith(out + os.sep):
            print("demo: a project '%s' exists outside %s; remove it or set SCIPION_USER_DATA"
                  % (PROJECT, out), file=sys.stderr)
            return 2
        shutil.rmtree(os.path.realpath(proj_path))
    project = manager.createProject(PROJECT)
    os.chdir(project.getPath())
    protImport, protInterp = loadTemplate(project, TEMPLATE, {
        "folder": data_dir, "pattern": "TS_*.mrcs", "pixelSize": px, "dose": args.dose,
        "perGap": args.per_gap, "mode": 0 if args.mode == "add" else 1})
    for prot in (protImport, protInterp):
        print("demo: running %s ..." % prot.getObjLabel())
        errors = prot.validate()
        if errors:
            print("demo: %s refused its input:\n  %s" % (prot.getObjLabel(), "\n  ".join(errors)),
                  file=sys.stderr)
            return 1
        project.launchProtocol(prot, wait=True)
        if not prot.isFinished():
            print("demo: %s %s; last log lines:\n%s" % (
                prot.getObjLabel(), prot.getStatus(),
                "\n".join(prot.getLogsLastLines(20, logFile=0) + prot.getLogsLastLines(20, logFile=1))),
                file=sys.stderr)
            return 1

    inSet = protImport.outputTiltSeries
    outSet = getattr(protInterp, OUT_TILTSERIES)
    print("\n== cryoTIGER demo summary ==")
    for ts in outSet.iterItems():
        tis = [ti.clone() for ti in ts.iterItems(orderBy="_index")]
        n_syn = sum(bool(getattr(ti, ATTR_SYNTHETIC).get()) for ti in tis)
        angles = [ti.getTiltAngle() for ti in tis]
        print("tilt series %s: %d tilts in, %d tilts out (%d synthetic), %.1f..%.1f deg, step %.2f deg"
              % (ts.getTsId(), inSet.getAnglesCount(), len(tis), n_syn, min(angles), max(angles),
                 ts.getAcquisition().getStep()))
        print("  output stack: %s" % os.path.join(project.getPath(), tis[0].getFileName()))
        print("  angles:       %s" % os.path.join(project.getPath(),
                                                  os.path.splitext(tis[0].getFileName())[0] + ".tlt"))
        if args.mode == "restore":
            print("  restored tilts vs the real (noisy) tilts at their angles, Pearson r: %s" % restore_scores(tis, data_dir))
    print("input stack:    %s" % os.path.join(data_dir, "TS_MT.mrcs"))
    print("Scipion project: %s (open it with: scipion3 project %s, SCIPION_USER_DATA=%s)"
          % (project.getPath(), PROJECT, os.environ.get("SCIPION_USER_DATA", "")))
    print("done in %.0f s" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
