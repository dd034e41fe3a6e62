"""One router per concern; ``mlops_rakuten.serve.app`` mounts them all."""
