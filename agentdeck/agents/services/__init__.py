"""Every write that matters in the agents domain. Views, admin actions, tasks and consumers call
these; nothing else writes agents, versions, runs or events."""
