"""What a learner sees in JupyterLab: the %docker magic, check and trace widgets, the live dashboard."""
