"""Traffic generator: simulated shoppers on a REES46-derived catalogue, written as raw
events (contract v1) to S3 or a local folder. See docs/event-contract.md."""

from generator.catalogue import Product, load_catalogue
from generator.simulate import generate_events
from generator.writer import write_events

__all__ = ["Product", "generate_events", "load_catalogue", "write_events"]
