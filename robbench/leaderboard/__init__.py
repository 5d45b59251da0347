"""The leaderboards built from the results store: the build, the papers' rows, the
findings, the rendering (render/) and the check of committed boards against a fresh build."""
