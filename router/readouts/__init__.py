"""Read-outs of a project: item, queue, label and cost counts, agreement, gold coverage."""
