"""cryoTIGER demo: a headless Scipion project from the portable full-chain
workflow template (templates/cryotiger_full_chain_builtin.json.template).

1. Simulate an aligned tilt series from a REAL volume (default: the cylindra
   microtubule tomogram ../shared/data/cylindra_mt/14pf_MT.tif, 10.52 A/px),
   -60..60 degrees every 3 degrees, dose-symmetric order, 3 e/A^2 per tilt
   (Poisson noise), CTF at a known defocus (default 5 um).
2. Create a Scipion project, load the template with the files filled in
   (tomo's ProtImportTs -> ProtCryoTigerInterpolate -> ProtCryoTigerCtf ->
   ProtCryoTigerReconstruct, built-in back ends) and run the protocols.
   The interpolation is the deep path: FILM fitted to the series first
   (--fit-minutes, from the plugin's starter model); --linear for linear.
3. Print a summary: tilts in and out, synthetic tilts, estimated defocus
   against the truth, the 3D-CTF-corrected tomogram, where the results are,
   and a hold-out line: restore mode (every second tilt dropped), FILM fitted
   on the kept tilts only against linear interpolation (median PSNR, SSIM
   against the real dropped tilts, 'cryotiger holdout').

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
TEMPLATE = "cryotiger_full_chain_builtin"
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
    p.add_argument("--defocus", type=float, default=50000.0, help="defocus of the simulation (A)")
    p.add_argument("--thickness", type=int, default=64, help="tomogram thickness (px)")
    p.add_argument("--fit-minutes", type=float, default=1.5,
                   help="FILM is fitted to the demo series for this many minutes, twice: once in "
                        "the chain (add mode), once on the kept tilts for the hold-out comparison")
    p.add_argument("--linear", action="store_true",
                   help="linear interpolation in the chain and no FILM hold-out (about a minute)")
    return p.parse_args(argv)


def simulate(args, folder):
    """Write folder/TS_MT.mrcs and TS_MT.tlt (angle, accumulated dose, order)."""
    import numpy as np
    from cryotiger_scipion.engine.commands.simulate import dose_symmetric_order
    from cryotiger_scipion.engine.formats.mrc import write_stack
    from cryotiger_scipion.engine.simulate import Acquisition, load_volume, simulate_tilt_series

    vol, px = load_volume(args.volume)
    px = px or args.pixel_size
    vol = vol - np.median(vol)            # density above the background projects positive
    angles = np.arange(-args.max_angle, args.max_angle + 1e-6, args.step)
    order = dose_symmetric_order(angles)
    acq = Acquisition(pixel_size=px, dose_per_tilt=args.dose, order=order, seed=0,
                      defocus=[args.defocus] * len(angles))
    data = simulate_tilt_series(vol, angles, acq)
    os.makedirs(folder, exist_ok=True)
    write_stack(os.path.join(folder, "TS_MT.mrcs"), data, px)
    with open(os.path.join(folder, "TS_MT.tlt"), "w") as f:
        for a, o in zip(angles, order):
            f.write("%.2f %.4f %d\n" % (a, o * args.dose, o))
    return data.shape, px


def holdout_line(args, data_dir, folder):
    """Restore mode on the demo series: every second tilt dropped; FILM fitted for
    --fit-minutes on the KEPT tilts only ('cryotiger interpolate --mode restore
    --fit-minutes'), then 'cryotiger holdout' scores FILM and linear against the
    real dropped tilts.  Returns the summary line (None on failure)."""
    import json
    import subprocess
    from cryotiger_scipion import Plugin
    os.makedirs(folder, exist_ok=True)
    stack, tlt = os.path.join(data_dir, "TS_MT.mrcs"), os.path.join(folder, "TS_MT.tlt")
    with open(os.path.join(data_dir, "TS_MT.tlt")) as f, open(tlt, "w") as g:
        g.writelines(line.split()[0] + "\n" for line in f if line.strip())   # angles only
    restored = os.path.join(folder, "TS_MT_restored.mrc")
    model = os.path.splitext(restored)[0] + "_fitted_film"
    report = os.path.join(folder, "holdout.json")
    print("demo: hold-out: fitting FILM on the kept tilts (%g min), then restoring the dropped ones ..."
          % args.fit_minutes)
    cmds = ['%s interpolate --input "%s" --angles "%s" --output "%s" --mode restore --method film '
            '--fit-minutes %s --device cpu --quiet' % (Plugin.getEngineCommand(), stack, tlt, restored,
                                                       args.fit_minutes),
            '%s holdout --input "%s" --angles "%s" --method linear --method film --model "%s" '
            '--name "FILM fitted" --report "%s"' % (Plugin.getEngineCommand(), stack, tlt, model, report)]
    for cmd in cmds:
        res = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                             env=Plugin.getEnviron() if hasattr(Plugin, "getEnviron") else None)
        if res.returncode:
            print("demo: hold-out failed: %s\n%s" % (cmd, (res.stderr or res.stdout)[-2000:]),
                  file=sys.stderr)
            return None
        fit = [l for l in res.stdout.splitlines() if l.startswith("fitted FILM")]
        if fit:
            print("demo: " + fit[0])
    with open(report) as f:
        r = json.load(f)["methods"]
    film, lin = r["FILM fitted"], r["linear"]
    return ("hold-out (restore mode, %d dropped tilts, medians): FILM fitted %g min: PSNR %.2f dB, "
            "SSIM %.3f | linear: PSNR %.2f dB, SSIM %.3f"
            % (len(film["psnr"]), args.fit_minutes, film["median_psnr"], film["median_ssim"],
               lin["median_psnr"], lin["median_ssim"]))


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
    protImport, protInterp, protCtf, protRec = loadTemplate(project, TEMPLATE, {
        "folder": data_dir, "pattern": "TS_*.mrcs", "pixelSize": px, "dose": args.dose,
        "perGap": args.per_gap, "thickness": args.thickness, "binning": 1, "tilts": 0,
        "defocusMin": 0.5 * args.defocus, "defocusMax": 1.5 * args.defocus})
    if not args.linear:
        # The deep path: FILM fitted to the series first (the protocol's own option),
        # starting from the plugin's starter model; CPU.
        from cryotiger_scipion.protocols.protocol_interpolate import MODEL_SOURCE_STARTER
        protInterp.method.set(1)
        protInterp.modelSource.set(MODEL_SOURCE_STARTER)
        protInterp.fitMinutes.set(args.fit_minutes)
        if hasattr(protInterp, "useGpu"):
            protInterp.useGpu.set(False)
        protInterp.setObjLabel("interpolate (FILM fitted %g min)" % args.fit_minutes)
        project.saveProtocol(protInterp)
    for prot in (protImport, protInterp, protCtf, protRec):
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
    import numpy as np
    from cryotiger_scipion.constants import OUT_CTFS, OUT_TOMOGRAMS
    for ctfTs in getattr(protCtf, OUT_CTFS).iterItems():
        du = np.array([c.getDefocusU() for c in ctfTs.iterItems()])
        dv = np.array([c.getDefocusV() for c in ctfTs.iterItems()])
        err = np.abs(0.5 * (du + dv) - args.defocus)
        print("CTF %s: %d tilts (synthetic included), median defocus %.0f A (truth %.0f A), "
              "median |error| %.0f nm" % (ctfTs.getTsId(), len(du), np.median(0.5 * (du + dv)),
                                          args.defocus, np.median(err) / 10))
    for tomo in getattr(protRec, OUT_TOMOGRAMS).iterItems():
        print("tomogram %s: %s, %s px (x, y, z), %.2f A/px, 3D-CTF corrected: %s"
              % (tomo.getTsId(), os.path.join(project.getPath(), tomo.getFileName()),
                 "x".join(str(d) for d in tomo.getDim()), tomo.getSamplingRate(),
                 bool(tomo.ctfCorrected()) if hasattr(tomo, "ctfCorrected") else "?"))
    if not args.linear:
        line = holdout_line(args, data_dir, os.path.join(out, "holdout"))
        if line is None:
            return 1
        print(line)
    print("input stack:    %s" % os.path.join(data_dir, "TS_MT.mrcs"))
    print("Scipion project: %s (open it with: scipion3 project %s, SCIPION_USER_DATA=%s)"
          % (project.getPath(), PROJECT, os.environ.get("SCIPION_USER_DATA", "")))
    print("done in %.0f s" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
