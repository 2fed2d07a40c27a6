use serde::Serialize;

/// A graph ready to print: nodes and labelled edges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Which view this is ("stream", "job" or "execution").
    pub kind: &'static str,
    /// The nodes.
    pub nodes: Vec<PlanNode>,
    /// The edges.
    pub edges: Vec<PlanEdge>,
}

/// One node of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanNode {
    /// Identifier, unique in the plan.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parallelism (1 for a single subtask).
    pub parallelism: usize,
    /// Further facts, such as the operators of a chain.
    pub details: Vec<String>,
}

/// One edge of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanEdge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// How records are partitioned along it.
    pub label: String,
}

impl Plan {
    /// The plan as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialize")
    }

    /// The plan as a Graphviz DOT digraph.
    pub fn to_dot(&self) -> String {
        let mut dot = format!(
            "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
            self.kind
        );
        for n in &self.nodes {
            let mut label = format!("{}\\np={}", escape(&n.name), n.parallelism);
            for d in &n.details {
                label.push_str("\\n");
                label.push_str(&escape(d));
            }
            dot.push_str(&format!("  \"{}\" [label=\"{label}\"];\n", escape(&n.id)));
        }
        for e in &self.edges {
            dot.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                escape(&e.from),
                escape(&e.to),
                escape(&e.label)
            ));
        }
        dot.push_str("}\n");
        dot
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
