"""funnelops: deploy and operate a data platform defined in one project file.

One declarative project definition, one tool: infrastructure (plan/apply), data flows
(raw -> trusted -> refined), runs with overlap protection, and the seed's lifecycle,
on an embedded local backend or on Google Cloud.
"""

__version__ = "0.1.0"
