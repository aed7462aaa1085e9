# -*- coding: utf-8 -*-
"""
@article{Majtner2025,
title = "cryoTIGER: deep-learning based tilt interpolation generator for enhanced reconstruction in cryo electron tomography",
author = "Majtner and others",
journal = "Communications Biology",
year = "2025",
doi = "http://dx.doi.org/10.1038/s42003-025-08961-5"
}

@inproceedings{Reda2022,
title = "FILM: Frame Interpolation for Large Motion",
author = "Reda, Fitsum and Kontkanen, Janne and Tabellion, Eric and Sun, Deqing and Pantofaru, Caroline and Curless, Brian",
booktitle = "European Conference on Computer Vision (ECCV)",
year = "2022",
doi = "http://dx.doi.org/10.1007/978-3-031-20071-7_15"
}
"""
