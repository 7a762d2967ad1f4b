// Import rules for src/ (docs/architecture.md, "Layers"), checked by `npm run lint:deps` inside
// `npm test`. A folder may import its own layer's other folders and any lower layer, never a
// higher one; nothing may form a cycle; only the store talks to MongoDB through the driver.
/** Lowest first. Each entry: the folders of one layer. */
const LAYERS = [
  ["common", "planning"],
  ["config"],
  ["store"],
  // Where records come from, and read-only views (steps report progress through them).
  ["sources", "queries"],
  // The three steps and the job lifecycle they share (lanes, windows, watermarks, leases,
  // set-aside records, healing). Lanes and jobs see the steps only through their contract,
  // src/steps/handover.ts (rule below); steps use lanes and jobs freely.
  ["lanes", "jobs", "steps"],
  ["admin"],
  ["runtimes"],
  ["tasks", "cli", "status-page", "demo"],
];
const folders = (layer) => `^src/(${layer.join("|")})/`;
const upward = LAYERS.flatMap((layer, i) => {
  const higher = LAYERS.slice(i + 1).flat();
  if (higher.length === 0) return [];
  return [
    {
      name: `no-upward-from-${layer.join("-")}`,
      comment: `${layer.join(", ")} may not import a higher layer (${higher.join(", ")}).`,
      severity: "error",
      from: { path: folders(layer) },
      to: { path: folders(higher) },
    },
  ];
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "A cycle makes load order matter and hides which module owns what.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "only-the-store-imports-mongodb",
      comment: "Queries live in src/store as verbs; everything else calls those verbs.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/store/" },
      to: { dependencyTypes: ["npm", "npm-dev", "npm-optional", "npm-peer"], path: "node_modules/mongodb/" },
    },
    {
      name: "the-service-stands-alone",
      comment:
        "The reference batch service is a separate program: it may use shared code and the store, nothing of the pipeline.",
      severity: "error",
      from: { path: "^src/service/" },
      to: { path: "^src/", pathNot: "^src/(service|common|store|config)/" },
    },
    {
      name: "product-uses-the-engine-entry-only",
      comment: "The embedded engine is its own package; only its public entry is imported.",
      severity: "error",
      from: { path: "^(src|test|bench)/" },
      to: { path: "packages/embedded-mongo/src/(?!index\\.ts$)" },
    },
    {
      name: "lanes-and-jobs-see-steps-through-their-contract",
      comment:
        "Lanes and jobs may use the hand-over contract (StepDeps, HandOver, keys) and nothing else of the steps.",
      severity: "error",
      from: { path: "^src/(lanes|jobs)/" },
      to: { path: "^src/steps/", pathNot: "^src/steps/handover\\.ts$" },
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    includeOnly: { path: "^(src|test|bench|packages/[^/]+/src|node_modules/mongodb/)" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
    },
  },
};
