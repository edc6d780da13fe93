"""The Markdown report and figures of rule file report.smk."""
