"""`dynembed demo`: the whole pipeline on real data, on this machine."""
