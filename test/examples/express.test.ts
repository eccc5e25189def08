import { start } from '../../examples/express/app.js';
import { stockRecipeSuite } from './stock-recipe.js';

stockRecipeSuite('examples/express', {
  start: (inventoryUrl) => start({ port: 0, inventoryUrl }),
  slow: { delay: 5_000, within: 2_000 },
});
