/** Lane ids: a job's lane id is its lane document's id, plus `#<pass>` for a backfill's later passes. */

/** A lane's document id (without the pass number), from a job's lane id. */
export const laneDocId = (laneId: string): string => laneId.replace(/#\d+$/, "");

/** The pass of a backfill window a lane id names (`…#2`); the first pass carries no number. */
export const lanePass = (laneId: string): number => Number(/#(\d+)$/.exec(laneId)?.[1] ?? 1);
