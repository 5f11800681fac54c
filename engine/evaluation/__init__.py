from .evaluator import Classification, EvaluatorBase, build_evaluator

__all__ = ["Classification", "EvaluatorBase", "build_evaluator"]
