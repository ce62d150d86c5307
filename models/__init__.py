"""Network definitions (CSN, HRNet, YOLOF), a registry of builders and checkpoint loading."""
