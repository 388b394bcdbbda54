"""dynembed's AWS infrastructure (CDK v2): one stack of constructs that each own their resources."""

from dynembed_infra.app import STACK_ID, build_app, build_stack

__all__ = ["STACK_ID", "build_app", "build_stack"]
