// metav1.LabelSelector matching (matchLabels AND matchExpressions), as apimachinery evaluates it: an empty selector
// matches everything, an unknown operator matches nothing.

export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

function requirementHolds(labels: Readonly<Record<string, string>>, r: LabelSelectorRequirement): boolean {
  const has = Object.hasOwn(labels, r.key);
  switch (r.operator) {
    case 'In': return has && (r.values ?? []).includes(labels[r.key]!);
    case 'NotIn': return !has || !(r.values ?? []).includes(labels[r.key]!);
    case 'Exists': return has;
    case 'DoesNotExist': return !has;
    default: return false;
  }
}

export function matchesLabelSelector(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
    && (sel.matchExpressions ?? []).every((r) => requirementHolds(labels, r));
}
