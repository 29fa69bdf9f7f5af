"""The example app of `repoctl build`: prints who it is and where it runs."""
