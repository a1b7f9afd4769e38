// The header is the whole module; this file only gives the target a source.
