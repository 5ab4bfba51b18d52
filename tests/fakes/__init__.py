"""Local fakes of provider APIs for tests and benchmarks."""
