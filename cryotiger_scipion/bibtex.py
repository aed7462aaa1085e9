# -*- coding: utf-8 -*-
"""
@article{Majtner2025,
title = "cryoTIGER: deep-learning based tilt interpolation generator for enhanced reconstruction in cryo electron tomography",
author = "Majtner, Tomáš and Kreysing, Jan Philipp and Tuijtel, Maarten W. and Cruz-León, Sergio and Liu, Jiasui and Hummer, Gerhard and Beck, Martin and Turoňová, Beata",
journal = "Communications Biology",
volume = "8",
pages = "1443",
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

@article{Zhang2016,
title = "Gctf: Real-time CTF determination and correction",
author = "Zhang, Kai",
journal = "Journal of Structural Biology",
volume = "193",
number = "1",
pages = "1-12",
year = "2016",
doi = "http://dx.doi.org/10.1016/j.jsb.2015.11.003"
}

@article{Turonova2017,
title = "Efficient 3D-CTF correction for cryo-electron tomography using NovaCTF improves subtomogram averaging resolution to 3.4 Å",
author = "Turoňová, Beata and Schur, Florian K. M. and Wan, William and Briggs, John A. G.",
journal = "Journal of Structural Biology",
volume = "199",
number = "3",
pages = "187-195",
year = "2017",
doi = "http://dx.doi.org/10.1016/j.jsb.2017.07.007"
}
"""
